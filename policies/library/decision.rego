# The edgeshim example policy library: the decision and the helpers the rule
# families share. Every rule family adds reasons to `deny`; a container is
# allowed exactly when no family found one.
#
# Entry point:   data.edgeshim.decision (OPA: edgeshim/decision).
# Load check:    data.edgeshim.config_errors (OPA: edgeshim/config_errors),
#                evaluated once when the gate loads the policy (config.rego).
# Settings:      data.edgeshim_config (see data.json and README.md).
#
# The rules read the settings directly: the load check has already refused a
# policy whose settings are missing or mistyped, so that work is done once
# per policy, not once per container (see README.md, "Fast rules").
package edgeshim

# The decision the shim acts on. `reasons` is a set of strings, each starting
# with the tag of the rule family that produced it ("registry: ...").
# A rule family may also say what the container may reach (`network`, see
# docs/policy.md, "Network"); without it, policy.toml's network_default.
decision := {"allow": count(deny) == 0, "reasons": deny, "network": network} if network

decision := {"allow": count(deny) == 0, "reasons": deny} if not network

# Workloads are what the pod was written for: Wasm modules and native
# programs, but not the pod's pause (sandbox) container.
workload if input.container.kind in {"wasm", "native"}

# The sources of the container's bind mounts: type "bind", or "bind" or
# "rbind" among the options (runc binds those whatever the type says).
bind_sources contains m.source if {
	some m in input.container.mounts
	m.type == "bind"
}

bind_sources contains m.source if {
	some m in input.container.mounts
	some opt in m.options
	opt in {"bind", "rbind"}
}

# under_any(path, folders): path is one of the folders or lies below one.
# Every folder setting ends in "/" (the load check makes sure), so that
# "/a/b/" covers "/a/b" and "/a/b/c" but not "/a/bc", and "/" covers every
# absolute path. A path with a ".." segment is under nothing, so
# "/var/lib/edgeshim-data/../../etc" cannot slip past a prefix.
under_any(path, folders) if {
	is_string(path)
	path != ""
	not contains(concat("", ["/", path, "/"]), "/../")
	with_slash := concat("", [path, "/"])
	some folder in folders
	startswith(with_slash, folder)
}

# The pod as operators name it in data: "namespace/name" (undefined outside a
# pod). Both come from containerd's CRI annotations, which containerd sets
# from kubelet's request; pod authors cannot set them.
pod_ref := concat("/", [input.pod.namespace, input.pod.name])

# quote(s): s between double quotes, for naming values in reasons. (Plain
# concatenation: both OPA and regorus produce the same bytes, which sprintf's
# %q/%v do not promise.)
quote(s) := concat("", ["\"", s, "\""])
