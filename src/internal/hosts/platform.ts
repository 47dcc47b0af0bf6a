/**
 * The platforms' stop contracts: how each one tells a process to stop (a
 * signal), how long it waits before SIGKILL (the grace), and how a process
 * recognises it from its environment.
 *
 * @internal
 */
import { Duration } from "effect"

/** @internal */
export type Id = "cloud-run" | "ecs" | "fly" | "heroku" | "nomad" | "kubernetes"

/** @internal */
export interface Preset {
  readonly id: Id
  /** As people write it: `Cloud Run`. */
  readonly name: string
  /** The variable the platform sets in every instance's environment. */
  readonly variable: string
  /** What it sends first. */
  readonly signal: NodeJS.Signals
  /** Its default time from that signal to SIGKILL. */
  readonly grace: Duration.Duration
  /** Where a deployment changes the grace (then tell us with `PLATFORM_GRACE`), if it can. */
  readonly graceSetting: string | undefined
}

/** In the order they are recognised: the more specific first (Cloud Run, Nomad may run on Kubernetes nodes). @internal */
export const PRESETS: ReadonlyArray<Preset> = [
  { id: "cloud-run", name: "Cloud Run", variable: "K_SERVICE", signal: "SIGTERM", grace: Duration.seconds(10), graceSetting: undefined },
  {
    id: "ecs",
    name: "Amazon ECS",
    variable: "ECS_CONTAINER_METADATA_URI_V4",
    signal: "SIGTERM",
    grace: Duration.seconds(30),
    graceSetting: "the container definition's stopTimeout"
  },
  { id: "fly", name: "Fly.io", variable: "FLY_APP_NAME", signal: "SIGINT", grace: Duration.seconds(5), graceSetting: "kill_timeout in fly.toml" },
  { id: "heroku", name: "Heroku", variable: "DYNO", signal: "SIGTERM", grace: Duration.seconds(30), graceSetting: undefined },
  { id: "nomad", name: "Nomad", variable: "NOMAD_ALLOC_ID", signal: "SIGINT", grace: Duration.seconds(5), graceSetting: "the task's kill_timeout" },
  {
    id: "kubernetes",
    name: "Kubernetes",
    variable: "KUBERNETES_SERVICE_HOST",
    signal: "SIGTERM",
    grace: Duration.seconds(30),
    graceSetting: "the pod's terminationGracePeriodSeconds"
  }
]

/** @internal */
export const IDS: ReadonlyArray<Id> = PRESETS.map((preset) => preset.id)

/** The preset whose variable is set (non-empty) in `env`, in the order of {@link PRESETS}. @internal */
export const detect = (env: Readonly<Record<string, string | undefined>>): Preset | undefined =>
  PRESETS.find((preset) => (env[preset.variable] ?? "") !== "")

/** @internal */
export const byId = (id: Id): Preset => PRESETS.find((preset) => preset.id === id)!

/**
 * What the shutdown leaves of the grace for the report, the flush of the
 * output and the telemetry (up to 1 s each) and the exit: 2 s, or a tenth
 * of the grace if that is more.
 *
 * @internal
 */
export const margin = (grace: Duration.Duration): Duration.Duration =>
  Duration.max(Duration.seconds(2), Duration.millis(Math.floor(Duration.toMillis(grace) / 10)))

/** The shutdown timeout that fits `grace`: the grace less its margin. @internal */
export const fitting = (grace: Duration.Duration): Duration.Duration =>
  Duration.max(Duration.zero, Duration.subtract(grace, margin(grace)))
