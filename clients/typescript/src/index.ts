/**
 * The shoprec API from TypeScript: openapi-fetch over the types that openapi-typescript generates from
 * clients/openapi.json (src/schema.d.ts, `npm run generate`; never edit it by hand).
 *
 *   import { createShoprecClient, newIdempotencyKey } from "@shoprec/client";
 *   const api = createShoprecClient("https://api.example", process.env.SHOPREC_KEY!);
 *   const { data, error } = await api.GET("/v1/users/{user_id}/recommendations",
 *                                         { params: { path: { user_id: "u1" }, query: { k: 10 } } });
 *   await api.POST("/v1/events", { body: [{ user_id: "u1", item_id: "i9", type: "view" }],
 *                                  params: { header: { "Idempotency-Key": newIdempotencyKey() } } });
 *
 * Every route, its parameters, body and answer are typed from the schema; `error` is the API's error body
 * (ErrorOut: error, message, errors). Retries are the caller's: resend a write with the same Idempotency-Key.
 */
import createClient, { type Client } from "openapi-fetch";

import type { components, paths } from "./schema";

export type { components, operations, paths } from "./schema";
export type ErrorOut = components["schemas"]["ErrorOut"];
export type RecommendationOut = components["schemas"]["RecommendationOut"];
export type WriteOut = components["schemas"]["WriteOut"];

export interface ShoprecOptions {
  /** The platform an admin key acts on (header X-Platform). */
  platform?: string;
  /** A fetch of your own (tests, a proxy agent). */
  fetch?: typeof globalThis.fetch;
}

/** A typed client of the API at `baseUrl`, authenticated by `apiKey` (header X-API-Key). */
export function createShoprecClient(baseUrl: string, apiKey: string, options: ShoprecOptions = {}): Client<paths> {
  const headers: Record<string, string> = { "X-API-Key": apiKey };
  if (options.platform) headers["X-Platform"] = options.platform;
  return createClient<paths>({ baseUrl: baseUrl.replace(/\/+$/, ""), headers, fetch: options.fetch });
}

/** A fresh Idempotency-Key (or event_id): choose it once per write and send it again on each retry. */
export function newIdempotencyKey(): string {
  return globalThis.crypto.randomUUID().replace(/-/g, "");
}
