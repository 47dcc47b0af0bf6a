import { Effect, Schedule, Stream } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { createServer } from "node:http"
import { WebSocketServer } from "ws"
import { Http } from "effect-graceful"

// An Effect app: server-sent events that end themselves, with a last event, when the server
// begins closing (the end of the drain delay), instead of being cut at the drain deadline.
const ticks = Stream.fromSchedule(Schedule.spaced("1 second")).pipe(Stream.map((n) => `data: ${n}\n\n`))
export const Events = HttpRouter.add("GET", "/events", Effect.map(
  Http.endOnClose(ticks, "event: bye\ndata: closing\n\n"),
  (stream) => HttpServerResponse.stream(Stream.encodeText(stream), { contentType: "text/event-stream" })
))

// Plain Node code: the factory gets `closing`, an AbortSignal; each socket of a WebSocket server
// passed to `webSockets` gets 1001 "going away" then, and the drain waits for them.
export const Chat = Http.layerNode(({ closing, webSockets }) => {
  const server = createServer((_request, response) => {
    const timer = setInterval(() => response.write("data: tick\n\n"), 1000)
    closing.addEventListener("abort", () => response.end("event: bye\ndata: closing\n\n"))
    response.on("close", () => clearInterval(timer))
  })
  webSockets(new WebSocketServer({ server })).on("connection", (socket) => socket.send("hello"))
  return server
}, { port: 8083, name: "chat" })
