#!/usr/bin/env python3
"""An OTLP/HTTP trace receiver for the trace tests (tests/e2e/traces.rs).

It decodes each ExportTraceServiceRequest with the OpenTelemetry project's own generated
protobuf classes (PyPI `opentelemetry-proto`), not with anything the gateway's exporter uses, and
prints one JSON line per span on stdout: ids in hex, name, kind, attributes, events' names and
attributes, and the resource's attributes. The first line is {"listening": PORT}.

It refuses what a collector refuses: another path (404), another method (405), a body that is
not application/x-protobuf (415) or does not decode (400).
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


def value(v):
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind)


def attributes(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


class Receiver(BaseHTTPRequestHandler):
    def answer(self, status, body=b"", content_type="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.answer(405)

    def do_POST(self):
        if self.path != "/v1/traces":
            return self.answer(404)
        length = int(self.headers.get("Content-Length") or 0)
        if length > 16 * 1024 * 1024:
            return self.answer(413)
        body = self.rfile.read(length)
        if self.headers.get("Content-Type") != "application/x-protobuf":
            return self.answer(415)
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except Exception:  # noqa: BLE001 - any decoding failure is the sender's
            return self.answer(400)
        for rs in request.resource_spans:
            resource = attributes(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    line = {
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(),
                        "name": s.name,
                        "kind": s.kind,
                        "attributes": attributes(s.attributes),
                        "events": [
                            {"name": e.name, "attributes": attributes(e.attributes)} for e in s.events
                        ],
                        "status_message": s.status.message,
                        "resource": resource,
                    }
                    sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        self.answer(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    sys.stdout.write(json.dumps({"listening": server.server_address[1]}) + "\n")
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
