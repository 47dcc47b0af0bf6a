/**
 * A plain Node app — Express — on its own port, drained like the rest by
 * `Http.layerNode`:
 *
 *   GET /hello       a greeting
 *   GET /work?ms=N   answers after N ms (0 to 60000)
 */
import express from "express"
import { createServer, type Server } from "node:http"
import { Http } from "../../src/index.ts"

const app = express()
  .get("/hello", (_request, response) => {
    response.send("hello from express\n")
  })
  .get("/work", (request, response) => {
    const ms = Number(request.query["ms"] ?? 0)
    if (!Number.isInteger(ms) || ms < 0 || ms > 60_000) {
      response.status(400).send("bad parameter ms: expected an integer from 0 to 60000\n")
      return
    }
    setTimeout(() => response.send(`worked ${ms} ms\n`), ms)
  })

/** The server is made here so that the example can log the port it bound. */
export const webServer: Server = createServer(app)

export const Web = (port: number, host?: string, reusePort = false) =>
  Http.layerNode(() => webServer, { port, host, reusePort, name: "web" })
