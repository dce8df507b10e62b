"""``iopo-eval data``: list, fetch, verify and locate the benchmark files."""

from __future__ import annotations

import argparse
import sys

from iopo_eval.commands.common import add_data_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="list, fetch, verify or locate benchmark files")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    for name, help_text in (
        ("list", "list the registry: upstream repository, commit, path, sha256 (or git blob id), license"),
        ("fetch", "download missing files into the cache (or check the mirror) and verify their hashes"),
        ("verify", "verify files already present (mirror or cache); never downloads"),
        ("path", "print the local path of each file"),
    ):
        q = dsub.add_parser(name, help=help_text)
        if name != "list":
            q.add_argument("keys", nargs="*", help="registry keys (default: all that can be obtained)")
        add_data_args(q)
        q.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from iopo_eval.data import REGISTRY, DataError, fetch, verify

    if args.data_command == "list":
        for f in REGISTRY.values():
            pin = (
                f"sha256 {f.sha256}"
                if f.sha256
                else f"git blob {f.git_blob}"
                if f.git_blob
                else "(not pinned yet)"
            )
            print(f"{f.key}\t{f.repo}@{f.commit[:12]}:{f.upstream_path}\t{pin}\t{f.license}")
        return 0
    keys = args.keys or list(REGISTRY)
    failed = 0
    for key in keys:
        try:
            path = (
                verify(key, args.data_mirror)
                if args.data_command == "verify"
                else fetch(key, args.data_mirror)
            )
        except (DataError, KeyError) as exc:
            failed += 1
            print(f"{key}\tERROR\t{exc}", file=sys.stderr)
            continue
        if args.data_command == "path":
            print(path)
        else:
            print(f"{key}\tok\t{path}")
    return 1 if failed else 0
