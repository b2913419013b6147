// Check (reserve), record and read usage, then print what Meter answered as one JSON object.
//   METER_TARGET=127.0.0.1:50051 METER_API_KEY=mk_... node example.js [subject]
// Over TLS: METER_TLS_CA=ca.pem (and METER_TLS_CLIENT_CERT=client.pem METER_TLS_CLIENT_KEY=client.key for
// mutual TLS; METER_TLS_SERVER_NAME when the certificate does not name the target's host).
"use strict";

const crypto = require("node:crypto");
const { MeterClient } = require("./meter");

async function main() {
  const target = process.env.METER_TARGET || "127.0.0.1:50051";
  const apiKey = process.env.METER_API_KEY;
  if (!apiKey) throw new Error("set METER_API_KEY (a key with the check, record and read roles, or admin)");
  const subject = process.argv[2] || "node:user:1";
  const env = process.env;
  const tls =
    env.METER_TLS_CA || env.METER_TLS_CLIENT_CERT
      ? {
          caFile: env.METER_TLS_CA,
          certFile: env.METER_TLS_CLIENT_CERT,
          keyFile: env.METER_TLS_CLIENT_KEY,
          serverName: env.METER_TLS_SERVER_NAME,
        }
      : undefined;
  const meter = new MeterClient(target, apiKey, { checkTimeoutMs: Number(env.METER_CHECK_TIMEOUT_MS || 500), tls });
  try {
    const call = { subject, provider: "openai", model: "gpt-4.1", operation: "chat" };
    const check = await meter.reserve({ ...call, estimate: { input_tokens: 1200, max_output_tokens: 300 } });
    if (!check.allowed) {
      console.log(JSON.stringify({ allowed: false, limits: check.limits, retry_after: check.retry_after }));
      process.exitCode = 3;
      return;
    }
    // ... the LLM call would happen here; OpenAI's usage.prompt_tokens includes cached tokens, so
    // Meter gets prompt_tokens - cached_tokens as input_tokens and the cached ones apart.
    const recordRequest = {
      ...call,
      call_id: crypto.randomUUID(), // the idempotency key: the same id on every retry
      reservation_id: check.reservation_id,
      usage: { input_tokens: 900, output_tokens: 250, cached_read_tokens: 100 },
      latency: { seconds: 1, nanos: 250000000 },
      outcome: "OUTCOME_SUCCESS",
    };
    const record = await meter.record(recordRequest);
    const retried = await meter.record(recordRequest); // e.g. the first answer was lost: counted once
    const usage = await meter.usage({ filter: { subject } });
    console.log(
      JSON.stringify({
        allowed: check.allowed,
        reservation_id: check.reservation_id,
        limits: check.limits.map((l) => ({ limit_id: l.limit_id, used: l.used, reserved: l.reserved, max: l.max })),
        call_id: record.call_id,
        reservation_settled: record.reservation_settled,
        cost_nanos: record.cost_nanos,
        retry_is_duplicate: retried.duplicate,
        totals: {
          calls: usage.totals.calls,
          input_tokens: usage.totals.input_tokens,
          output_tokens: usage.totals.output_tokens,
          cached_read_tokens: usage.totals.cached_read_tokens,
          cost_nanos: usage.totals.cost_nanos,
        },
      }),
    );
  } finally {
    meter.close();
  }
}

main().catch((err) => {
  console.error(`meter example failed: ${err.code !== undefined ? `gRPC ${err.code} ` : ""}${err.message}`);
  process.exit(1);
});
