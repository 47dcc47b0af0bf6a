import express from "express"
import { Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { createServer } from "node:http"
import { Health, Http, Main } from "effect-graceful"

// An Effect app: a drop-in for NodeHttpServer.layer.
const Api = HttpRouter.serve(HttpRouter.add("GET", "/", HttpServerResponse.text("hello"))).pipe(
  Layer.provide(Http.layer(() => createServer(), { port: 8080, name: "api" }))
)

// Any framework's Node server: Express, Koa, node:http, node:http2 (Fastify: Http.layerFastify).
const app = express().get("/", (_request, response) => response.send("hello from express"))
const Web = Http.layerNode(() => createServer(app), { port: 8081, name: "web" })

// Readiness and liveness on a port of their own, open through the whole shutdown.
const Probes = Health.layer({ port: 9000 })

Main.runMain(Layer.mergeAll(Api, Web, Probes), { drainDelay: "5 seconds", drainTimeout: "20 seconds" })
