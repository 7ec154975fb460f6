#!/usr/bin/env python3
"""Evaluate edgeshim policy decisions with real OPA (the oracle).

    opa_eval.py --policy-dir DIR --data FILE --inputs FILE.jsonl [--output FILE]

Loads every *.rego file under DIR and the data FILE once, then evaluates
data.edgeshim.decision (OPA entrypoint edgeshim/decision) for each JSON line
of the inputs file ("-" reads standard input; empty lines are skipped) and
writes one line per input:

    {"allow": <bool>, "reasons": [<sorted strings>]}, plus "network" when the
    decision has one (as OPA gives it)

OPA is the Go library shipped in the opa-golib-python-bindings wheel,
installed by hack/install-oracle.sh into a venv. Run this script with that
venv's python; run with any other python it re-executes itself under
${EDGESHIM_ORACLE_VENV:-/opt/edgeshim/oracle-venv}/bin/python when that
exists.

Exits 1 on any OPA error (a policy that does not compile, an evaluation
error, an undefined or malformed decision) and 2 on bad arguments or input,
naming the file or line.
"""

import argparse
import json
import os
import sys
from pathlib import Path

DEFAULT_VENV = "/opt/edgeshim/oracle-venv"
DOCUMENT = "edgeshim.decision"  # data.edgeshim.decision


def die(code, msg):
    print("opa_eval: " + msg, file=sys.stderr)
    sys.exit(code)


def import_opa():
    try:
        from opa_bindings import OpaEngine, OpaError  # noqa: F401
        return OpaEngine, OpaError
    except ImportError:
        pass
    venv_python = Path(os.environ.get("EDGESHIM_ORACLE_VENV", DEFAULT_VENV)) / "bin" / "python"
    # Re-exec once under the oracle venv (the marker stops a loop when that
    # venv is broken).
    if venv_python.exists() and not os.environ.get("_EDGESHIM_OPA_EVAL_REEXEC"):
        os.environ["_EDGESHIM_OPA_EVAL_REEXEC"] = "1"
        os.execv(str(venv_python), [str(venv_python), os.path.abspath(__file__)] + sys.argv[1:])
    die(2, "the OPA bindings (python module opa_bindings) are not importable from %s; "
           "run hack/install-oracle.sh and use the venv's python (%s)"
           % (sys.executable, venv_python))


def check_decision(value, where):
    if not isinstance(value, dict) or not {"allow", "reasons"} <= set(value) \
            or not set(value) <= {"allow", "reasons", "network"}:
        die(1, "%s: data.edgeshim.decision is not an object with allow, reasons and "
               "optionally network: %r" % (where, value))
    allow, reasons = value["allow"], value["reasons"]
    # The bindings hand a Rego set over as a JSON array.
    if not isinstance(allow, bool):
        die(1, "%s: decision.allow is not a boolean: %r" % (where, allow))
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        die(1, "%s: decision.reasons is not a set of strings: %r" % (where, reasons))
    decision = {"allow": allow, "reasons": sorted(reasons)}
    if "network" in value:
        decision["network"] = value["network"]
    return decision


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--policy-dir", required=True, help="folder of .rego files (searched recursively)")
    ap.add_argument("--data", required=True, help="JSON data document (e.g. policies/library/data.json)")
    ap.add_argument("--inputs", required=True, help="JSON lines, one input document each; - for stdin")
    ap.add_argument("--output", default="-", help="where to write the decisions (default: stdout)")
    args = ap.parse_args(argv)

    OpaEngine, OpaError = import_opa()

    policy_dir = Path(args.policy_dir)
    if not policy_dir.is_dir():
        die(2, "--policy-dir %s is not a folder" % policy_dir)
    policies = sorted(p for p in policy_dir.rglob("*.rego") if p.is_file())
    if not policies:
        die(2, "no .rego files under %s" % policy_dir)
    try:
        with open(args.data, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        die(2, "cannot read --data %s: %s" % (args.data, e))
    if not isinstance(data, dict):
        die(2, "--data %s: the data document must be a JSON object" % args.data)

    engine = OpaEngine()
    # Print output from the policy would otherwise land on our stderr
    # unannounced; keep it, labelled.
    engine.print_handler = lambda msg, loc: print("opa_eval: print %s: %s" % (loc, msg), file=sys.stderr)
    try:
        for p in policies:
            # The module name is the path relative to the folder, so errors
            # name the file.
            engine.add_policy(str(p.relative_to(policy_dir)), p.read_text(encoding="utf-8"))
        engine.add_data(data)
    except OpaError as e:
        die(1, "loading policies from %s: %s" % (policy_dir, e))

    src = sys.stdin if args.inputs == "-" else None
    try:
        src = src or open(args.inputs, encoding="utf-8")
    except OSError as e:
        die(2, "cannot read --inputs %s: %s" % (args.inputs, e))
    try:
        out = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8", newline="\n")
    except OSError as e:
        die(2, "cannot write --output %s: %s" % (args.output, e))
    if out is sys.stdout:
        out.reconfigure(encoding="utf-8", newline="\n")

    n = 0
    with src:
        for lineno, line in enumerate(src, 1):
            if not line.strip():
                continue
            where = "%s:%d" % (args.inputs, lineno)
            try:
                doc = json.loads(line)
            except ValueError as e:
                die(2, "%s: not JSON: %s" % (where, e))
            if not isinstance(doc, dict):
                die(2, "%s: an input document must be a JSON object" % where)
            try:
                value = engine.eval_document(DOCUMENT, doc)
            except OpaError as e:  # OpaUndefinedError included
                die(1, "%s: %s" % (where, e))
            out.write(json.dumps(check_decision(value, where), ensure_ascii=False) + "\n")
            n += 1
    out.flush()
    if out is not sys.stdout:
        out.close()
    engine.close()
    print("opa_eval: %d decisions from %d policy files" % (n, len(policies)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
