"""The `voicebot` command: one entry point, one module per command group."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from voicebot.config import SettingsError, load_settings
from voicebot.models.registry import ModelNotProvisionedError

# Command-group modules; each has register(subparsers) and sets args.handler.
COMMAND_MODULES = (
    "voicebot.cli.models_cmd",
    "voicebot.cli.speech_cmd",
    "voicebot.cli.nlu_cmd",
    "voicebot.cli.call_cmd",
    "voicebot.cli.serve_cmd",
    "voicebot.cli.calls_cmd",
    "voicebot.cli.eval_cmd",
    "voicebot.cli.bench_cmd",
    "voicebot.cli.protocol_cmd",
    "voicebot.cli.engines_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voicebot",
        description=(
            "voicebot: a German speech-AI front line for inbound calls. It listens (VAD), transcribes "
            "(faster-whisper), understands the concern (e5 intent model + slots), answers by voice and "
            "routes or hands the call to a human, while agents watch live. All models are local."
        ),
        epilog="First run `voicebot models pull`, then e.g. `voicebot serve`. Each command has its own --help.",
    )
    parser.add_argument("--config", help="a TOML settings file (see pipelines/default/voicebot.toml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # a command group not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        settings = load_settings(args.config)
        return int(args.handler(args, settings) or 0)
    except (ModelNotProvisionedError, SettingsError, FileNotFoundError) as exc:
        print(f"voicebot: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
