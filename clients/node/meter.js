// A small Node.js client for Meter. It loads the published contract (protos/meter/v1) at run time with
// @grpc/proto-loader, so it never goes stale against the .proto files; any other language can do the
// same or generate stubs (see docs/grpcurl.md).
"use strict";

const path = require("node:path");
const crypto = require("node:crypto");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const PROTOS = path.resolve(__dirname, "..", "..", "protos");

function loadMeterPackage(protoRoot = PROTOS) {
  const definition = protoLoader.loadSync(["meter/v1/meter.proto", "meter/v1/admin.proto"], {
    includeDirs: [protoRoot],
    keepCase: true, // field names as in the .proto (and in grpcurl's JSON)
    longs: Number, // int64 as JS numbers: token counts and nano-USD stay below 2^53 here
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).meter.v1;
}

class MeterClient {
  /**
   * @param {string} target host:port
   * @param {string} apiKey mk_... (sent as `authorization: Bearer mk_...`)
   * @param {{checkTimeoutMs?: number, timeoutMs?: number}} [options]
   */
  constructor(target, apiKey, options = {}) {
    const pkg = loadMeterPackage();
    this.stub = new pkg.Meter(target, grpc.credentials.createInsecure());
    this.metadata = new grpc.Metadata();
    this.metadata.set("authorization", `Bearer ${apiKey}`);
    this.checkTimeoutMs = options.checkTimeoutMs ?? 500; // past this, your failure policy decides
    this.timeoutMs = options.timeoutMs ?? 5000;
  }

  _call(method, request, timeoutMs) {
    return new Promise((resolve, reject) => {
      const deadline = new Date(Date.now() + timeoutMs);
      this.stub[method](request, this.metadata, { deadline }, (err, reply) => (err ? reject(err) : resolve(reply)));
    });
  }

  /** CheckQuota; mode "CHECK_MODE_RESERVE" holds the estimate. A denial is allowed=false, not an error. */
  check(request) {
    return this._call("CheckQuota", { mode: "CHECK_MODE_CHECK_ONLY", ...request }, this.checkTimeoutMs);
  }

  reserve(request) {
    return this.check({ ...request, mode: "CHECK_MODE_RESERVE" });
  }

  /** RecordCall; call_id is the idempotency key: reuse it on every retry of the same record. */
  record(request) {
    return this._call("RecordCall", { call_id: crypto.randomUUID(), ...request }, this.timeoutMs);
  }

  usage(request = {}) {
    return this._call("GetUsage", request, this.timeoutMs);
  }

  close() {
    this.stub.close();
  }
}

module.exports = { MeterClient, loadMeterPackage, PROTOS };
