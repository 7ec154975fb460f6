# The edgeshim example policy library: the decision and the helpers the rule
# families share. Every rule family adds reasons to `deny`; a container is
# allowed exactly when no family found one.
#
# Entry point: data.edgeshim.decision (OPA: edgeshim/decision).
# Settings:    data.edgeshim_config (see data.json and README.md).
package edgeshim

# The decision the shim acts on. `reasons` is a set of strings, each starting
# with the tag of the rule family that produced it ("registry: ...").
decision := {"allow": count(deny) == 0, "reasons": deny}

# Settings from data.edgeshim_config, read so that every rule below sees
# either a value of the right type or, for lists, an empty list: a missing
# or mistyped setting never leaves an undefined value where a `not` could
# meet it (see README.md, "Writing rules both engines agree on"). config.rego
# denies every container while a setting is missing or mistyped.
allowed_registries := string_list("allowed_registries")

required_annotations := string_list("required_annotations")

allowed_mount_prefixes := string_list("allowed_mount_prefixes")

system_mount_prefixes := string_list("system_mount_prefixes")

data_local_namespaces := string_list("data_local_namespaces")

# A list of at most one folder, so that a missing setting means "nothing is
# under it" rather than an undefined argument.
node_data_dirs := [dir |
	dir := data.edgeshim_config.node_data_dir
	is_string(dir)
]

max_memory_bytes := n if {
	n := data.edgeshim_config.max_memory_bytes
	is_number(n)
}

max_module_bytes := n if {
	n := data.edgeshim_config.max_module_bytes
	is_number(n)
}

host_network_annotation := s if {
	s := data.edgeshim_config.host_network_annotation
	is_string(s)
}

egress_annotation := s if {
	s := data.edgeshim_config.egress_annotation
	is_string(s)
}

# The strings of the list setting `key`; [] when it is missing or no list.
string_list(key) := [s |
	v := data.edgeshim_config[key]
	is_array(v)
	some s in v
	is_string(s)
]

# Workloads are what the pod was written for: Wasm modules and native
# programs, but not the pod's pause (sandbox) container.
workload if input.container.kind == "wasm"

workload if input.container.kind == "native"

# A bind mount: type "bind", or options naming bind/rbind (runc treats any
# mount with those options as a bind whatever its type says).
bind_mount(m) if m.type == "bind"

bind_mount(m) if {
	some opt in m.options
	opt == "bind"
}

bind_mount(m) if {
	some opt in m.options
	opt == "rbind"
}

# The sources of the container's bind mounts.
bind_sources contains m.source if {
	some m in input.container.mounts
	bind_mount(m)
}

# under(path, dir): path is dir itself or lies below it. A trailing "/" on
# dir is optional ("/a/b/" and "/a/b" mean the same folder, and neither
# covers "/a/bc"); "/" covers every absolute path, "" covers nothing. A path
# with a ".." segment is never under anything, so
# "/var/lib/edgeshim-data/../../etc" cannot slip past a prefix.
under(path, dir) if {
	not dotdot(path)
	base := trim_suffix(dir, "/")
	base != ""
	path == base
}

under(path, dir) if {
	dir != ""
	not dotdot(path)
	base := trim_suffix(dir, "/")
	startswith(path, concat("", [base, "/"]))
}

under_any(path, dirs) if {
	some dir in dirs
	under(path, dir)
}

dotdot(path) if {
	some seg in split(path, "/")
	seg == ".."
}

# quote(s): s between double quotes, for naming values in reasons. (Plain
# concatenation: both OPA and regorus produce the same bytes, which sprintf's
# %q/%v do not promise.)
quote(s) := concat("", ["\"", s, "\""])
