#!/usr/bin/env python3
"""Generate policy input documents for the OPA/regorus oracle.

    gen_inputs.py --count N --seed S [--data FILE] > inputs.jsonl

Writes N JSON lines to stdout, each a document valid against
docs/policy/input.schema.json. The same seed (and data file) gives the same
lines. The documents are built so that every rule of the example library
(policies/library) both fires and stays quiet many times: the thresholds and
prefixes come from the data file (default: policies/library/data.json), and
each input sits on either side of them, often right at the edge. Now and then
ids, annotations, sources and names hold unusual strings (non-ASCII, quotes,
backslashes, control characters) to shake out encoding differences between
engines.

Standard library only; runs on any Python 3.8+.
"""

import argparse
import json
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO / "policies" / "library" / "data.json"

# Strings that are awkward for an engine or a JSON codec.
ODD = [
    'quote"inside',
    "back\\slash",
    "trailing\\",
    "ünïcödé",
    "模块-数据",
    "emoji-🚀-rocket",
    "rtl-\u05e9\u05dc\u05d5\u05dd",
    "zero\u200bwidth",
    "combining-e\u0301",
    "tab\there",
    "new\nline",
    "ctl-\u0001-\u001f",
    "nul-\u0000-byte",
    "del-\u007f",
    "%v %q %s {}",
    "${HOME}",
    "  spaced  ",
    "",
    "\ufeffbom",
    "\U0010fffd-last-plane",
]

NS_TYPES = ["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"]


def load_config(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)["edgeshim_config"]


class Gen:
    def __init__(self, rng, cfg):
        self.r = rng
        self.cfg = cfg

    # -- small helpers -----------------------------------------------------

    def chance(self, p):
        return self.r.random() < p

    def pick(self, seq):
        return seq[self.r.randrange(len(seq))]

    def odd(self):
        return self.pick(ODD)

    def hexstr(self, n):
        return "".join(self.r.choice("0123456789abcdef") for _ in range(n))

    def word(self):
        base = self.pick(["sensor", "agg", "plc", "relay", "opc", "mqtt", "hist", "vision", "edge"])
        if self.chance(0.05):
            return base + "-" + self.odd()
        return "%s-%d" % (base, self.r.randrange(100))

    def dir_of(self, prefix):
        """A path in the folder `prefix` names (with or without its slash)."""
        base = prefix.rstrip("/")
        return base + "/" + self.word()

    # -- pieces ------------------------------------------------------------

    def image(self, kind):
        allowed = self.cfg["allowed_registries"]
        roll = self.r.random()
        if roll < 0.12:
            return ""
        if roll < 0.60:
            reg = self.pick(allowed)
            if kind == "sandbox" and self.chance(0.6):
                return reg + "pause:" + self.pick(["1", "3.9", "3.10"])
            path = self.word()
            if self.chance(0.05):
                path = self.odd() + "/" + path
            tag = self.pick([":1.4", ":latest", "@sha256:" + self.hexstr(64), ""])
            return reg + "edge/" + path + tag
        # Not allowed: foreign registries and near misses of allowed ones.
        reg = self.pick(allowed)
        bare = reg.rstrip("/")
        return self.pick([
            "docker.io/library/nginx:1.25",
            "registry.k8s.io/pause:3.9",
            "ghcr.io/attacker/miner:latest",
            bare,                                  # no path at all
            bare + ".evil.example/x:1",            # suffix trick
            bare + "x/y:1",                        # longer host name
            bare.upper() + "/edge/x:1",            # case differs
            " " + reg + "edge/x:1",               # leading space
            "evil.example/" + reg + "x:1",         # allowed name further in
            "docker.io/" + self.odd() + ":1",
            self.odd(),
        ])

    def module(self, kind):
        if kind != "wasm":
            return None
        cap = self.cfg["max_module_bytes"]
        size = self.pick([
            0,
            self.r.randrange(1, 1 << 20),
            self.r.randrange(1, cap),
            cap - 1,
            cap,
            cap + 1,
            cap + self.r.randrange(1, 1 << 24),
            cap * 2,
            1 << 40,
        ])
        return {"sha256": self.hexstr(64), "size": max(size, 0)}

    def memory_limit(self):
        cap = self.cfg["max_memory_bytes"]
        roll = self.r.random()
        if roll < 0.14:
            return None
        if roll < 0.19:
            return 0
        if roll < 0.22:
            return self.pick([-1, -(1 << 20), -(1 << 62)])
        if roll < 0.60:
            return self.pick([1, 4096, 64 << 20, self.r.randrange(1, cap)])
        if roll < 0.68:
            return cap
        if roll < 0.76:
            return cap - 1
        if roll < 0.84:
            return cap + 1
        if roll < 0.96:
            return cap + self.r.randrange(1, 1 << 32)
        return self.pick([(1 << 53) + 1, (1 << 63) - 1, 1 << 62])

    def maybe_int(self, lo, hi):
        return None if self.chance(0.3) else self.r.randrange(lo, hi)

    def resources(self):
        return {
            "memory_limit": self.memory_limit(),
            "cpu_quota": self.maybe_int(1000, 400000),
            "cpu_period": self.maybe_int(10000, 1000000),
            "cpu_shares": self.maybe_int(2, 262144),
            "pids_limit": self.maybe_int(1, 4096),
        }

    def bind_source(self, sandbox_id, bad_rate):
        """A bind-mount source: mostly under an allowed or system prefix,
        sometimes under none of them, often right at a prefix's edge."""
        cfg = self.cfg
        allowed = cfg["allowed_mount_prefixes"]
        system = cfg["system_mount_prefixes"]
        node = cfg["node_data_dir"]
        if self.r.random() >= bad_rate:
            roll = self.r.random()
            if roll < 0.30:
                return self.dir_of(node)
            if roll < 0.45:
                return self.dir_of(self.pick(allowed))
            if roll < 0.52:
                return self.pick([node, node.rstrip("/"), self.pick(allowed)])
            if roll < 0.56:
                return self.pick(allowed).rstrip("/") + "/" + self.odd()
            sysp = self.pick(system).rstrip("/")
            return self.pick([
                sysp + "/io.containerd.grpc.v1.cri/sandboxes/" + sandbox_id + "/hosts",
                sysp + "/io.containerd.grpc.v1.cri/sandboxes/" + sandbox_id + "/resolv.conf",
                sysp + "/io.containerd.grpc.v1.cri/sandboxes/" + sandbox_id + "/shm",
                sysp + "/io.containerd.grpc.v1.cri/containers/" + self.hexstr(12) + "/termination-log",
            ])
        p = self.pick(allowed + system + [node]).rstrip("/")
        return self.pick([
            "/etc",
            "/etc/passwd",
            "/",
            "",
            "/var/run/docker.sock",
            "/dev/mem",
            "/home/" + self.odd(),
            p + "-evil/x",                          # sibling with a longer name
            p + "/../../etc",                       # traversal
            p + "/a/../../../etc/shadow",
            p + "/..",
            "relative/" + p.lstrip("/"),
            p.upper() + "/x",
            "/tmp/" + self.odd(),
        ])

    def mounts(self, kind, sandbox_id):
        out = []
        # The default OCI mounts: no sources worth checking (not binds).
        if self.chance(0.7):
            out.append({"destination": "/proc", "source": "proc", "type": "proc",
                        "options": ["nosuid", "noexec", "nodev"], "readonly": False})
        if self.chance(0.6):
            out.append({"destination": "/dev", "source": "tmpfs", "type": "tmpfs",
                        "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
                        "readonly": False})
        if self.chance(0.15):
            # A tmpfs with a path-looking source: still not a bind.
            out.append({"destination": "/scratch", "source": self.pick(["/etc", "/", "tmpfs"]),
                        "type": "tmpfs", "options": ["nosuid", "nodev"], "readonly": False})
        if self.chance(0.1):
            out.append({"destination": "/sys", "source": "sysfs", "type": "sysfs",
                        "options": ["nosuid", "noexec", "nodev", "ro"], "readonly": True})
        # Pauses rarely have binds; workloads usually do.
        n = self.pick([0, 0, 1]) if kind == "sandbox" else self.pick([0, 1, 1, 2, 2, 3, 4])
        bad_rate = self.pick([0.0, 0.0, 0.1, 0.25])
        for _ in range(n):
            ro = self.chance(0.5)
            style = self.r.random()
            if style < 0.45:
                typ, opts = "bind", ["rbind", "ro" if ro else "rw"]
            elif style < 0.65:
                typ, opts = "bind", ["bind", "rprivate"]
            elif style < 0.85:
                # Bind by options only: the type says something else.
                typ = self.pick(["none", "", "tmpfs"])
                opts = [self.pick(["bind", "rbind"]), "nosuid"]
            else:
                typ, opts = "bind", []
            if ro and "ro" not in opts:
                opts.append("ro")
            out.append({"destination": "/" + self.word(),
                        "source": self.bind_source(sandbox_id, bad_rate),
                        "type": typ, "options": opts, "readonly": ro})
        if n and self.chance(0.1):
            out.append(dict(out[-1]))  # a duplicate: one reason, not two
        self.r.shuffle(out)
        return out

    def namespaces(self, host_network):
        out = []
        for t in NS_TYPES:
            if t == "network" and host_network:
                continue
            if t in ("user", "time", "cgroup") and not self.chance(0.2):
                continue
            path = None if self.chance(0.5) else "/proc/%d/ns/%s" % (self.r.randrange(1, 99999), t)
            if t == "network" and path is not None:
                path = "/var/run/netns/cni-" + self.hexstr(8)
            out.append({"type": t, "path": path})
        return out

    def pod(self):
        if self.chance(0.18):
            return None
        cfg = self.cfg
        local = cfg["data_local_namespaces"]
        host = cfg["host_network_namespaces"]
        # Pods the operator lists by name: ("namespace", "name").
        listed = [tuple(p.split("/", 1)) for p in cfg["host_network_pods"] + cfg["data_local_pods"]]
        name = self.word() + "-" + self.hexstr(4)
        roll = self.r.random()
        if roll < 0.35:
            ns = self.pick(local)
        elif roll < 0.50:
            ns = self.pick(host)
        elif roll < 0.65:
            ns, name = self.pick(listed)
            # Near misses of a listed pod: same name elsewhere, name changed.
            miss = self.r.random()
            if miss < 0.15:
                ns = ns + "-x"
            elif miss < 0.30:
                name = self.pick([name + "x", name.upper(), " " + name, name + "/"])
        else:
            near = self.pick(local + host)
            ns = self.pick(["default", "kube-system", "line-4", near.upper(), near + " ",
                            " " + near, near + "-x", "", self.odd()])
        return {
            "id": self.hexstr(64) if not self.chance(0.05) else self.odd(),
            "name": name,
            "namespace": ns,
            "uid": "%s-%s-%s-%s-%s" % (self.hexstr(8), self.hexstr(4), self.hexstr(4),
                                       self.hexstr(4), self.hexstr(12)),
        }

    def annotations(self, kind, name, image, pod, host_network):
        cfg = self.cfg
        a = {}
        if pod is not None:
            a["io.kubernetes.cri.container-type"] = "sandbox" if kind == "sandbox" else "container"
            if kind == "sandbox":
                a["io.kubernetes.cri.sandbox-image"] = image
            else:
                a["io.kubernetes.cri.container-name"] = name
                a["io.kubernetes.cri.image-name"] = image
            a["io.kubernetes.cri.sandbox-id"] = pod["id"]
            a["io.kubernetes.cri.sandbox-name"] = pod["name"]
            a["io.kubernetes.cri.sandbox-namespace"] = pod["namespace"]
        for key in cfg["required_annotations"]:
            roll = self.r.random()
            if roll < 0.62:
                a[key] = self.pick(["ot-team", "line-3-ops", "", self.odd()])
            elif roll < 0.70:
                a[key.upper()] = "ot-team"         # wrong case: still missing
            elif roll < 0.74:
                a[key + " "] = "ot-team"           # near miss
        # A pod's own annotations that try to grant itself what only the
        # operator's data may: they must change nothing.
        if host_network or self.chance(0.2):
            roll = self.r.random()
            if roll < 0.5:
                a["edgeshim.io/host-network"] = "allowed"
            elif roll < 0.7:
                a["edgeshim.io/host-network"] = self.pick(["Allowed", "true", "", self.odd()])
        roll = self.r.random()
        if roll < 0.30:
            a["edgeshim.io/egress"] = self.pick(["true", "false"])
        elif roll < 0.40:
            a["edgeshim.io/data-local"] = self.pick(["false", "exempt"])
        if self.chance(0.08):
            a[self.odd()] = self.odd()
        if self.chance(0.05):
            a["edgeshim.io/note"] = self.odd()
        # Shuffle the key order: the policy must not care.
        items = list(a.items())
        self.r.shuffle(items)
        return dict(items)

    # -- a whole document ----------------------------------------------------

    def document(self):
        roll = self.r.random()
        kind = "wasm" if roll < 0.5 else ("native" if roll < 0.75 else "sandbox")
        pod = self.pod()
        host_network = self.chance(0.25)
        image = self.image(kind)
        name = "" if (kind == "sandbox" or pod is None) else self.word()
        if pod is not None and kind != "sandbox" and self.chance(0.03):
            name = self.odd()
        cid = self.hexstr(64) if not self.chance(0.06) else self.odd()
        if kind == "wasm":
            entry = "/app/" + self.word() + ".wasm"
        elif kind == "native":
            entry = self.pick(["/usr/bin/", "/bin/", "./"]) + self.word()
        else:
            entry = "/pause"
        if self.chance(0.04):
            entry = "/" + self.odd()
        args = [entry] + [self.pick(["--window", "5s", "-v", self.word()])
                          for _ in range(self.r.randrange(3))]
        if self.chance(0.05):
            args.append(self.odd())
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
        if self.chance(0.5):
            env["SITE"] = self.pick(["line-3", "line-4", "hq"])
        if self.chance(0.05):
            env["ODD"] = self.odd()
        sandbox_id = pod["id"] if pod is not None else self.hexstr(64)
        return {
            "action": self.pick(["create", "start", "update"]),
            "container": {
                "id": cid,
                "name": name,
                "kind": kind,
                "image": image,
                "entrypoint": entry,
                "module": self.module(kind),
                "args": args,
                "env": env,
                "mounts": self.mounts(kind, sandbox_id),
                "resources": self.resources(),
                "namespaces": self.namespaces(host_network),
                "host_network": host_network,
                "annotations": self.annotations(kind, name, image, pod, host_network),
            },
            "pod": pod,
            "node": {"name": self.pick(["gw-substation-12", "edge-01", "plc-gw-7"])
                     if not self.chance(0.03) else self.odd()},
        }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, required=True, help="how many documents")
    ap.add_argument("--seed", type=int, required=True, help="random seed")
    ap.add_argument("--data", default=str(DEFAULT_DATA),
                    help="policy data file whose edgeshim_config sets the edges "
                         "(default: %(default)s)")
    args = ap.parse_args(argv)
    if args.count < 0:
        ap.error("--count must be >= 0")
    gen = Gen(random.Random(args.seed), load_config(args.data))
    out = sys.stdout
    out.reconfigure(encoding="utf-8", newline="\n")
    for _ in range(args.count):
        out.write(json.dumps(gen.document(), ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
