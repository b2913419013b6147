// A small Node.js client for Meter. It loads the published contract (protos/meter/v1) at run time with
// @grpc/proto-loader, so it never goes stale against the .proto files; any other language can do the
// same or generate stubs (see docs/grpcurl.md).
"use strict";

const fs = require("node:fs");
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

/**
 * @typedef {object} TlsOptions
 * @property {string} [caFile] CA bundle (PEM) the server's certificate must chain to; default: Node's roots
 * @property {string} [certFile] client certificate chain (PEM), for a server with --tls-client-ca (mutual TLS)
 * @property {string} [keyFile] private key of certFile (PEM)
 * @property {string} [serverName] name to verify the server's certificate against, when not the target's host
 */

/** [credentials, channel options] for the options' tls (undefined: plaintext). */
function channelCredentials(tls) {
  if (!tls) return [grpc.credentials.createInsecure(), {}];
  if (Boolean(tls.certFile) !== Boolean(tls.keyFile)) throw new Error("tls: certFile and keyFile go together");
  const read = (file) => (file ? fs.readFileSync(file) : null);
  const credentials = grpc.credentials.createSsl(read(tls.caFile), read(tls.keyFile), read(tls.certFile));
  return [credentials, tls.serverName ? { "grpc.ssl_target_name_override": tls.serverName } : {}];
}

class MeterClient {
  /**
   * @param {string} target host:port
   * @param {string} apiKey mk_... (sent as `authorization: Bearer mk_...`)
   * @param {{checkTimeoutMs?: number, timeoutMs?: number, tls?: TlsOptions}} [options]
   *   tls: connect with TLS (a server started with --tls-cert); plaintext without it.
   */
  constructor(target, apiKey, options = {}) {
    const pkg = loadMeterPackage();
    const [credentials, channelOptions] = channelCredentials(options.tls);
    this.stub = new pkg.Meter(target, credentials, channelOptions);
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

module.exports = { MeterClient, channelCredentials, loadMeterPackage, PROTOS };
