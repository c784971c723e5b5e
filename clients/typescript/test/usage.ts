// Type-checked by `npm run typecheck` (tests/client/test_generated.py): the generated types fit real calls.
import { createShoprecClient, newIdempotencyKey, type RecommendationOut } from "../src/index";

export async function usage(): Promise<string[]> {
  const api = createShoprecClient("http://127.0.0.1:8000", "sk_test");
  await api.POST("/v1/events", {
    body: [{ user_id: "u1", item_id: "i9", type: "view", event_id: newIdempotencyKey() }],
    params: { header: { "Idempotency-Key": newIdempotencyKey() } },
  });
  const { data, error } = await api.GET("/v1/users/{user_id}/recommendations", {
    params: { path: { user_id: "u1" }, query: { k: 10 } },
  });
  if (error) return [error.error, error.message];
  const list: RecommendationOut | undefined = data;
  return (list?.items ?? []).map((item) => item.item_id);
}
