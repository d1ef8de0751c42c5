"""``inferledger agent`` (sample a node's GPUs, scrape its engines) and ``inferledger
gateway`` (the tracing proxy): the two agents run on or beside inference nodes."""

from __future__ import annotations

import argparse

from commands.args import stop_event


def cmd_agent(args: argparse.Namespace) -> int:
    from agents.run import run_agent

    run_agent(gpu_backend=args.gpu_backend, host=args.host, interval_s=args.interval,
              vllm=args.vllm, vllm_interval_s=args.vllm_interval,
              otlp_endpoint=args.otlp_endpoint, otlp_protocol=args.otlp_protocol,
              stop=stop_event())
    return 0


def cmd_gateway(args: argparse.Namespace) -> int:
    from agents.gateway.server import serve_gateway

    serve_gateway(args.listen, args.upstream, otlp_endpoint=args.otlp_endpoint,
                  otlp_protocol=args.otlp_protocol, timeout_s=args.timeout,
                  health_interval_s=args.health_interval, route_by=args.route_by)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser("agent", help="sample this node's GPUs and export OTLP metrics",
                       description="Node agent: reads every GPU through NVML (or the simulator) "
                       "and exports energy, power, memory, utilization and processes, and "
                       "scrapes local vLLM engines' /metrics.")
    a.add_argument("--gpu-backend", default="nvml", metavar="SPEC",
                   help="'nvml' (real GPUs, default), 'sim:PATH' (a simulated node) or "
                   "'none' (GPUs read by another agent, e.g. DCGM: only --vllm engines)")
    a.add_argument("--host", help="host name to report (default: this machine's)")
    a.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                   help="sampling interval, 0.1–60 s (default 1)")
    a.add_argument("--otlp-endpoint", default="http://127.0.0.1:4318", metavar="URL",
                   help="collector (default http://127.0.0.1:4318)")
    a.add_argument("--otlp-protocol", default="http/protobuf", choices=("grpc", "http/protobuf"))
    a.add_argument("--vllm", action="append", default=[], metavar="URL",
                   help="a local vLLM engine to scrape (its /metrics), e.g. "
                   "http://127.0.0.1:8000; its process and GPUs are found by its port")
    a.add_argument("--vllm-interval", type=float, default=5.0, metavar="SECONDS",
                   help="how often engines are scraped (default 5)")
    a.set_defaults(func=cmd_agent)

    g = sub.add_parser("gateway", help="OpenAI-compatible proxy that traces every request",
                       description="Reverse proxy for chat completions, completions, embeddings "
                       "and models in front of vLLM engines: streams pass through, requests go "
                       "to the healthy upstream with the fewest outstanding, and each one gets "
                       "the tracing middleware's span (INFERLEDGER_* variables configure it).")
    g.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT")
    g.add_argument("--upstream", action="append", required=True, metavar="URL",
                   help="engine base URL, e.g. http://10.0.0.5:8000 (repeat for several)")
    g.add_argument("--otlp-endpoint", help="collector (default INFERLEDGER_OTLP_ENDPOINT)")
    g.add_argument("--otlp-protocol", choices=("grpc", "http/protobuf"))
    g.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                   help="longest a request may take upstream before 504 (default 600)")
    g.add_argument("--health-interval", type=float, default=2.0, metavar="SECONDS",
                   help="how often upstreams' /health and /v1/models are checked (default 2)")
    g.add_argument("--route-by", choices=("outstanding", "queue"), default="outstanding",
                   help="least requests outstanding from this gateway (default), or also the "
                   "engines' own waiting queue and KV-cache usage from their /metrics")
    g.set_defaults(func=cmd_gateway)
