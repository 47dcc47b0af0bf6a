/**
 * The errors the broker sources share.
 *
 * @internal
 */
import { Data } from "effect"

/** A broker call failed: connecting, consuming, settling a message, closing. @internal */
export class BrokerError extends Data.TaggedError("BrokerError")<{
  readonly broker: string
  readonly operation: string
  readonly cause: unknown
}> {
  override get message(): string {
    const cause = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `${this.broker}: ${this.operation} failed: ${cause}`
  }
}

/**
 * A broker setting cannot keep the contract with the library's deadlines: a
 * lock or ack wait shorter than the drain timeout would let the broker give a
 * message in flight to another consumer while its unit still runs. @internal
 */
export class SettingRefused extends Data.TaggedError("SettingRefused")<{
  readonly broker: string
  readonly setting: string
  readonly value: string
  readonly against: string
  readonly expected: string
}> {
  override get message(): string {
    return `${this.broker}: ${this.setting} (${this.value}) refused: ${this.expected} (${this.against})`
  }
}

/** A handler written as a Promise rejected or threw. @internal */
export class HandlerError extends Data.TaggedError("HandlerError")<{ readonly cause: unknown }> {
  override get message(): string {
    return this.cause instanceof Error ? this.cause.message : String(this.cause)
  }
}
