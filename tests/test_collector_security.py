"""Bearer-token authentication and TLS, with unmodified SDK exporters on both transports."""

from __future__ import annotations

import ssl
import subprocess
import sys

import grpc
import httpx
import pytest
import trustme
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExp
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExp
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from collector.receivers.security import Security
from collector.service import Collector
from tests.builders import stored

TOKEN = "s3cret-token"


def _spans(name: str) -> list:
    mem = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(mem))
    with tp.get_tracer("t").start_as_current_span(name):
        pass
    return list(mem.get_finished_spans())


@pytest.fixture
def secured(data, tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    key_pem, cert_pem, ca_pem = (tmp_path / "key.pem", tmp_path / "cert.pem",
                                 tmp_path / "ca.pem")
    cert.private_key_pem.write_to_path(key_pem)
    cert.cert_chain_pems[0].write_to_path(cert_pem)
    ca.cert_pem.write_to_path(ca_pem)
    c = Collector(data, grpc_port=0, http_port=0,
                  security=Security(TOKEN, cert_pem, key_pem)).start()
    yield c, ca_pem
    c.stop()


def test_tls_and_token_over_http(secured, data, monkeypatch) -> None:
    # requests (under the SDK exporter) lets these override the exporter's CA file.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    c, ca = secured
    url = f"https://127.0.0.1:{c.http_port}/v1/traces"
    ok = HttpExp(endpoint=url, certificate_file=str(ca),
                 headers={"authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert ok.export(_spans("with-token")) == SpanExportResult.SUCCESS
    r = httpx.post(url, content=b"", verify=ssl.create_default_context(cafile=ca),
                   headers={"content-type": "application/x-protobuf",
                            "authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    with pytest.raises(httpx.HTTPError):  # plain HTTP to a TLS port: refused, server fine
        httpx.post(f"http://127.0.0.1:{c.http_port}/v1/traces", content=b"", timeout=5)
    no_token = HttpExp(endpoint=url, certificate_file=str(ca), timeout=5)
    assert no_token.export(_spans("no-token")) == SpanExportResult.FAILURE
    assert stored(data, "SELECT name FROM raw_spans") == [("with-token",)]


def test_tls_and_token_over_grpc(secured, data) -> None:
    c, ca = secured
    creds = grpc.ssl_channel_credentials(ca.read_bytes())
    ok = GrpcExp(endpoint=f"localhost:{c.grpc_port}", credentials=creds,
                 headers={"authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert ok.export(_spans("grpc-with-token")) == SpanExportResult.SUCCESS
    bad = GrpcExp(endpoint=f"localhost:{c.grpc_port}", credentials=creds,
                  headers={"authorization": "Bearer nope"}, timeout=5)
    assert bad.export(_spans("grpc-bad-token")) == SpanExportResult.FAILURE
    assert stored(data, "SELECT name FROM raw_spans") == [("grpc-with-token",)]


def test_half_a_tls_configuration_is_refused(tmp_path) -> None:
    out = subprocess.run([sys.executable, "-m", "commands", "collector", "--data",
                          str(tmp_path / "d"), "--tls-cert", str(tmp_path / "c.pem")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "both a certificate and its key" in out.stderr
