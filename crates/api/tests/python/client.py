#!/usr/bin/env python3
"""A rollcall.v1.Verifier client written from the .proto alone, by another gRPC stack.

It generates Python stubs from proto/rollcall/v1/verifier.proto with grpc_tools.protoc, then
submits a campaign in three chunks and watches it with results until the stream ends, printing
one line per event:

    submitted <id> accepted=<n> duplicate=<n> invalid=<n>
    progress <STATE> done=<n> total=<n>
    result row=<n> <STATUS> <REASON> duplicate=<true|false> <address>
    end <STATE> done=<n> deliverable=<n> undeliverable=<n> risky=<n> unknown=<n>

Usage: client.py HOST:PORT [--token TOKEN] [--ca FILE [--client-cert FILE --client-key FILE]]
(install grpcio-tools with setup.sh beside this). With --ca it speaks TLS, trusting that CA
(PEM), and presents the client certificate when given (mutual TLS).
"""

import argparse
import importlib
import os
import sys
import tempfile

import grpc
from grpc_tools import protoc

PROTO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "proto"))
PROTO = "rollcall/v1/verifier.proto"

CHUNKS = [
    ["ok1@example.com", "nobody@example.com"],
    ["ok1@EXAMPLE.com", "not-an-address"],
    ["catchall@example.org", "grey@example.net"],
]


def generate(out_dir):
    """Compiles the proto into out_dir and imports the two generated modules."""
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    code = protoc.main([
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        PROTO,
    ])
    if code != 0:
        sys.exit(f"protoc failed with {code}")
    sys.path.insert(0, out_dir)
    pb2 = importlib.import_module("rollcall.v1.verifier_pb2")
    grpc_pb2 = importlib.import_module("rollcall.v1.verifier_pb2_grpc")
    return pb2, grpc_pb2


def read(path):
    with open(path, "rb") as f:
        return f.read()


def open_channel(args):
    """A plaintext channel, or a TLS one trusting --ca (and presenting a client cert)."""
    if not args.ca:
        return grpc.insecure_channel(args.address)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(args.ca),
        private_key=read(args.client_key) if args.client_key else None,
        certificate_chain=read(args.client_cert) if args.client_cert else None,
    )
    return grpc.secure_channel(args.address, credentials)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("address", help="HOST:PORT of the rollcall gRPC server")
    parser.add_argument("--token", help="bearer token, when the server requires one")
    parser.add_argument("--ca", help="PEM CA to trust: speak TLS instead of plaintext")
    parser.add_argument("--client-cert", help="PEM client certificate (mTLS), with --ca")
    parser.add_argument("--client-key", help="PEM key of --client-cert")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as out_dir:
        pb2, grpc_pb2 = generate(out_dir)
        state_name = pb2.CampaignState.Name
        metadata = [("authorization", f"Bearer {args.token}")] if args.token else []

        with open_channel(args) as channel:
            stub = grpc_pb2.VerifierStub(channel)

            def requests():
                yield pb2.SubmitCampaignRequest(options=pb2.CampaignOptions(name="from-python"))
                for chunk in CHUNKS:
                    yield pb2.SubmitCampaignRequest(chunk=pb2.AddressChunk(addresses=chunk))

            submitted = stub.SubmitCampaign(requests(), metadata=metadata, timeout=30)
            print(f"submitted {submitted.campaign_id} accepted={submitted.accepted} "
                  f"duplicate={submitted.duplicate} invalid={submitted.invalid}", flush=True)

            watch = pb2.WatchCampaignRequest(campaign_id=submitted.campaign_id, include_results=True)
            last = None
            for event in stub.WatchCampaign(watch, metadata=metadata, timeout=60):
                kind = event.WhichOneof("event")
                if kind == "progress":
                    p = event.progress
                    last = p
                    print(f"progress {state_name(p.state)} done={p.done} total={p.total}", flush=True)
                elif kind == "result":
                    r = event.result
                    print(f"result row={r.row} {pb2.Status.Name(r.status)} {pb2.Reason.Name(r.reason)} "
                          f"duplicate={str(r.duplicate).lower()} {r.address}", flush=True)
                else:
                    sys.exit(f"unexpected event {event}")
            if last is None:
                sys.exit("the watch stream carried no progress")
            print(f"end {state_name(last.state)} done={last.done} deliverable={last.deliverable} "
                  f"undeliverable={last.undeliverable} risky={last.risky} unknown={last.unknown}",
                  flush=True)


if __name__ == "__main__":
    main()
