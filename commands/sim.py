"""``inferledger sim``: the simulated vLLM stack — nodes, engines, load, scenarios, history."""

from __future__ import annotations

import argparse
from pathlib import Path

from commands.args import days, stop_event, utc


def cmd_node(args: argparse.Namespace) -> int:
    from commands.sim_node import run_node
    from simulator.node import EngineSpec

    run_node(name=args.name, gpu_models=args.gpus.split(","),
             engines=[EngineSpec.parse(e) for e in args.engine], state=Path(args.state),
             host=args.listen, collector_grpc=args.collector_grpc,
             collector_http=args.collector_http, interval_s=args.interval, stop=stop_event())
    return 0


def cmd_engine(args: argparse.Namespace) -> int:
    from simulator.engine.server import serve_engine

    serve_engine(model=args.model, state=Path(args.state), host=args.host, port=args.port,
                 otlp_endpoint=args.otlp_endpoint, otlp_protocol=args.otlp_protocol,
                 middleware=args.middleware, max_num_seqs=args.max_num_seqs, seed=args.seed,
                 load_s=args.load_s)
    return 0


def _target(text: str) -> tuple[str, str]:
    model, _, url = text.partition("=")
    if not url:
        raise argparse.ArgumentTypeError(f"{text!r} is not MODEL=URL")
    return model, url.rstrip("/")


def cmd_loadgen(args: argparse.Namespace) -> int:
    from simulator.loadgen import run_loadgen
    from simulator.scenario import load_scenario

    targets: dict[str, list[str]] = {}
    for model, url in args.target:
        targets.setdefault(model, []).append(url)
    run_loadgen(targets, load_scenario(args.scenario).apps, rate_per_s=args.rate,
                duration_s=args.duration, seed=args.seed, otlp_endpoint=args.otlp_endpoint)
    return 0


def cmd_scenarios(args: argparse.Namespace) -> int:
    from simulator.scenario import available, load_scenario

    for name in available():
        sc = load_scenario(name)
        print(f"{name:<12} {sc.gpu_count:>3} GPUs  {len(sc.apps)} apps  {sc.description}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from simulator.history.generate import generate_history, report_progress
    from simulator.scenario import load_scenario

    stats = generate_history(load_scenario(args.scenario), args.days, args.endpoint,
                             end=args.end, seed=args.seed, progress=report_progress())
    print(stats.describe())
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    sim = sub.add_parser("sim", help="the simulated vLLM stack (no GPU needed)",
                         description="Simulated nodes, engines and load. Everything they emit "
                         "is labelled simulated.")
    sim_sub = sim.add_subparsers(dest="sim_command", required=True, metavar="PART")
    n = sim_sub.add_parser("node", help="one simulated node: GPUs, engines and node agent",
                           description="Creates the node's simulated GPUs, starts one engine "
                           "process per --engine and samples the GPUs like a node agent.")
    n.add_argument("--name", required=True, help="node (host) name")
    n.add_argument("--gpus", required=True, help="comma-separated GPU models: h100,a100,l4")
    n.add_argument("--engine", action="append", required=True, metavar="MODEL@GPUS:PORT",
                   help="engine to run, e.g. llama-3.1-8b-instruct@0:8101 or "
                   "qwen2.5-32b-instruct@0+1:8201 (tensor parallel)")
    n.add_argument("--state", required=True, help="file holding the node's shared GPU state")
    n.add_argument("--listen", default="127.0.0.1", help="address engines listen on")
    n.add_argument("--collector-grpc", default="127.0.0.1:4317", help="collector OTLP/gRPC")
    n.add_argument("--collector-http", default="http://127.0.0.1:4318",
                   help="collector OTLP/HTTP")
    n.add_argument("--interval", type=float, default=1.0, help="GPU sampling interval (s)")
    n.set_defaults(func=cmd_node)

    e = sim_sub.add_parser("engine", help="one simulated vLLM engine process",
                           description="OpenAI-compatible server with continuous batching on "
                           "simulated GPUs (CUDA_VISIBLE_DEVICES picks them), exporting vLLM's "
                           "llm_request spans.")
    e.add_argument("--state", required=True, help="the node's GPU state file")
    e.add_argument("--model", required=True, help="served model name")
    e.add_argument("--host", default="127.0.0.1")
    e.add_argument("--port", type=int, required=True)
    e.add_argument("--otlp-endpoint", help="like vLLM's --otlp-traces-endpoint (host:port)")
    e.add_argument("--otlp-protocol", default="grpc", choices=("grpc", "http/protobuf"))
    e.add_argument("--middleware", action="append", default=[], metavar="IMPORT.PATH",
                   help="ASGI middleware to add, as vLLM's --middleware does")
    e.add_argument("--max-num-seqs", type=int, default=64, help="max batch size (default 64)")
    e.add_argument("--seed", type=int, help="random seed for reply lengths")
    e.add_argument("--load-s", type=float, metavar="SECONDS",
                   help="model loading time before serving (default: weights at 8 GB/s/GPU)")
    e.set_defaults(func=cmd_engine)

    lg = sim_sub.add_parser("loadgen", help="send synthetic chat traffic",
                            description="Tenants and apps with Poisson arrivals, streaming and "
                            "not, a few bad requests and client aborts.")
    lg.add_argument("--target", action="append", required=True, type=_target,
                    metavar="MODEL=URL",
                    help="engine base URL serving MODEL (repeat for several)")
    lg.add_argument("--scenario", default="demo", metavar="NAME|FILE",
                    help="whose apps send the traffic (default: demo; see sim scenarios)")
    lg.add_argument("--otlp-endpoint", metavar="URL",
                    help="collector OTLP/HTTP base URL for the apps' own spans (RAG retrieval)")
    lg.add_argument("--rate", type=float, default=3.0, help="requests per second")
    lg.add_argument("--duration", type=float, help="seconds to run (default: until stopped)")
    lg.add_argument("--seed", type=int, default=7)
    lg.set_defaults(func=cmd_loadgen)

    sl = sim_sub.add_parser("scenarios", help="list the scenarios",
                            description="Lists the scenarios that ship: name, GPUs, apps and "
                            "what each shows. Each is a TOML file in simulator/scenarios/ (every "
                            "field: docs/SCENARIOS.md); --scenario also takes a path to your own.")
    sl.set_defaults(func=cmd_scenarios)

    h = sim_sub.add_parser("history", help="send days of a scenario to a collector, fast",
                           description="Generates DAYS of the scenario's fleet and traffic on "
                           "a virtual clock, ending now, and sends it as OTLP/HTTP to a running "
                           "collector; prints the rate. Run the analytics afterwards.")
    h.add_argument("--scenario", default="demo", metavar="NAME|FILE", help="default: demo")
    h.add_argument("--days", type=days, default=7.0, metavar="DURATION",
                   help="how much history: 7d (default), 36h, 90m")
    h.add_argument("--endpoint", default="http://127.0.0.1:4318", metavar="URL",
                   help="collector OTLP/HTTP base URL (default http://127.0.0.1:4318)")
    h.add_argument("--end", type=utc, metavar="DATE", help="last instant (default: now)")
    h.add_argument("--seed", type=int, default=7)
    h.set_defaults(func=cmd_history)
