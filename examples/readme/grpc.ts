import { Effect, Layer, Schedule, Stream } from "effect"
import { Main } from "effect-graceful"
import * as Grpc from "effect-graceful/Grpc"

type Greeter = {
  readonly SayHello: { readonly request: { readonly name: string }; readonly response: { readonly message: string } }
  readonly Ticks: { readonly request: object; readonly response: { readonly n: number } }
}

const GreeterLive = Layer.unwrap(Effect.map(Grpc.loadService<Greeter>("greeter.proto", "demo.Greeter"), (Greeter) =>
  Grpc.layer({
    port: 50051,
    services: [Grpc.service(Greeter, {
      SayHello: Grpc.unary(({ name }) => Effect.succeed({ message: `hello ${name}` })),
      // A stream that ends with OK when the server stops, instead of being cut.
      Ticks: Grpc.serverStream((_request, call) =>
        Stream.fromSchedule(Schedule.spaced("1 second")).pipe(Stream.map((n) => ({ n })), Stream.interruptWhen(call.closing)))
    })]
  })))

Main.runMain(GreeterLive, { drainDelay: "5 seconds" })
