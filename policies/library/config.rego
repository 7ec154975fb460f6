# The load check: what is wrong with the settings in data.edgeshim_config.
# The gate evaluates config_errors once when it loads the policy (policy.toml:
# check = "edgeshim/config_errors") and refuses a policy whose settings have
# errors, so that the last good policy keeps serving (or, with none, every
# container is denied). The decision rules can then read the settings
# without checking them for every container.
package edgeshim

config_types := {
	"allowed_registries": "array",
	"required_annotations": "array",
	"max_memory_bytes": "number",
	"host_network_namespaces": "array",
	"host_network_pods": "array",
	"max_module_bytes": "number",
	"allowed_mount_prefixes": "array",
	"system_mount_prefixes": "array",
	"data_local_namespaces": "array",
	"data_local_pods": "array",
	"data_local_brokers": "array",
	"node_data_dir": "string",
}

# Settings that name folders, each of which must end in "/".
folder_settings := {"allowed_mount_prefixes", "system_mount_prefixes"}

config_errors contains msg if {
	some key, want in config_types
	not config_has(key, want)
	msg := concat("", ["config: data.edgeshim_config.", key, " must be set (type ", want, ")"])
}

config_has(key, want) if type_name(data.edgeshim_config[key]) == want

# Lists hold strings only.
config_errors contains msg if {
	some key, want in config_types
	want == "array"
	list := data.edgeshim_config[key]
	is_array(list)
	some v in list
	not is_string(v)
	msg := concat("", ["config: data.edgeshim_config.", key, " must hold only strings"])
}

# A registry entry must end in "/": "registry.factory.local" alone would also
# admit "registry.factory.local.example.com/...", and "" would admit all.
config_errors contains msg if {
	some r in data.edgeshim_config.allowed_registries
	is_string(r)
	not endswith(r, "/")
	msg := concat("", ["config: allowed_registries entry ", quote(r), " must end in \"/\""])
}

# A folder must end in "/": "/var/lib/edgeshim-data" alone would also cover
# "/var/lib/edgeshim-data-old".
config_errors contains msg if {
	some key in folder_settings
	some dir in data.edgeshim_config[key]
	is_string(dir)
	not endswith(dir, "/")
	msg := concat("", ["config: ", key, " entry ", quote(dir), " must end in \"/\""])
}

# Pods are named "namespace/name", as pod_ref makes them: one "/", both parts
# non-empty.
pod_list_settings := {"host_network_pods", "data_local_pods"}

config_errors contains msg if {
	some key in pod_list_settings
	some pod in data.edgeshim_config[key]
	is_string(pod)
	not pod_name_valid(pod)
	msg := concat("", ["config: ", key, " entry ", quote(pod), " must be \"namespace/name\""])
}

pod_name_valid(pod) if {
	parts := split(pod, "/")
	count(parts) == 2
	parts[0] != ""
	parts[1] != ""
}

config_errors contains msg if {
	dir := data.edgeshim_config.node_data_dir
	is_string(dir)
	not endswith(dir, "/")
	msg := concat("", ["config: node_data_dir ", quote(dir), " must end in \"/\""])
}

# A data-local broker is a network rule as docs/policy.md ("Network") writes
# them: <network>:<port>, the network "*", an IPv4 address or CIDR, or an
# IPv6 one in brackets; the port "*", 1-65535, or a range low-high. The
# shim would refuse a bad one at every decision (the fail mode); here it is
# refused once, at load, and the last good policy keeps serving.
config_errors contains msg if {
	some rule in data.edgeshim_config.data_local_brokers
	is_string(rule)
	not network_rule_valid(rule)
	msg := concat("", [
		"config: data_local_brokers entry ", quote(rule),
		" is not a network rule (<network>:<port>, as 10.20.0.0/16:1883)",
	])
}

network_rule_valid(rule) if {
	parts := regex.find_all_string_submatch_n(`^(\*|\[[0-9a-fA-F:./]+\]|[0-9./]+):(\*|[0-9]+|[0-9]+-[0-9]+)$`, rule, 1)
	count(parts) == 1
	rule_network_valid(parts[0][1])
	rule_ports_valid(parts[0][2])
}

rule_network_valid(network) if network == "*"

rule_network_valid(network) if {
	not startswith(network, "[")
	cidr_valid(network, "/32")
}

rule_network_valid(network) if {
	startswith(network, "[")
	endswith(network, "]")
	cidr_valid(trim_suffix(trim_prefix(network, "["), "]"), "/128")
}

# An address without a prefix is that one host.
cidr_valid(network, _) if {
	contains(network, "/")
	net.cidr_is_valid(network)
}

cidr_valid(network, host) if {
	not contains(network, "/")
	net.cidr_is_valid(concat("", [network, host]))
}

rule_ports_valid(ports) if ports == "*"

rule_ports_valid(ports) if {
	not contains(ports, "-")
	port_valid(to_number(ports))
}

rule_ports_valid(ports) if {
	[low, high] := split(ports, "-")
	port_valid(to_number(low))
	port_valid(to_number(high))
	to_number(low) <= to_number(high)
}

port_valid(port) if {
	port >= 1
	port <= 65535
}
