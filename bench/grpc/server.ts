/**
 * A benchmark server, started by run.ts as a child process so that it has a
 * core of its own. Prints `READY <port>`.
 *
 *   node bench/grpc/server.ts plain    # grpc-js handlers, no shutdown handling
 *   node bench/grpc/server.ts effect   # the same service through Grpc.serve (Main.runMain)
 *
 * `plain` stops like a careful grpc-js service does: on SIGTERM, tryShutdown,
 * then exit. Both answer `cpu` messages with their CPU time so far.
 */
import * as grpc from "@grpc/grpc-js"
import * as protoLoader from "@grpc/proto-loader"
import { Effect, Layer } from "effect"
import { fileURLToPath } from "node:url"
import * as Grpc from "../../src/Grpc.ts"
import { Main } from "../../src/index.ts"
import { answerCpu } from "../support/child.ts"

const proto = fileURLToPath(new URL("./bench.proto", import.meta.url))
type Messages = {
  readonly Echo: { readonly request: { readonly text: string }; readonly response: { readonly text: string } }
  readonly Wait: { readonly request: { readonly ms: number }; readonly response: { readonly text: string } }
}

answerCpu()

const plain = () => {
  const definition = protoLoader.loadSync(proto, { keepCase: true, defaults: true })["bench.Bench"]
  if (definition === undefined || "format" in definition) throw new Error("bench.Bench missing")
  const server = new grpc.Server()
  server.addService(definition, {
    Echo: (call: grpc.ServerUnaryCall<{ text: string }, { text: string }>, callback: grpc.sendUnaryData<{ text: string }>) =>
      callback(null, { text: call.request.text }),
    Wait: (call: grpc.ServerUnaryCall<{ ms: number }, { text: string }>, callback: grpc.sendUnaryData<{ text: string }>) =>
      setTimeout(() => callback(null, { text: "waited" }), call.request.ms)
  })
  server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, port) => {
    if (error !== null) throw error
    console.log(`READY ${port}`)
  })
  process.once("SIGTERM", () => server.tryShutdown(() => process.exit(0)))
}

const effect = () => {
  const GrpcLive = Layer.unwrap(Effect.map(Grpc.loadService<Messages>(proto, "bench.Bench"), (Bench) =>
    Grpc.layer({
      host: "127.0.0.1",
      port: 0,
      services: [Grpc.service(Bench, {
        Echo: Grpc.unary((request) => Effect.succeed({ text: request.text })),
        Wait: Grpc.unary((request) => Effect.as(Effect.sleep(request.ms), { text: "waited" }))
      })]
    })))
  const Ready = Layer.effectDiscard(Grpc.Server.use((server) => Effect.sync(() => console.log(`READY ${server.port}`))))
  Main.runMain(Ready.pipe(Layer.provideMerge(GrpcLive)))
}

if (process.argv[2] === "plain") plain()
else effect()
