# config: the settings in data.edgeshim_config must be there and of the
# right type. A missing or mistyped setting would otherwise switch a check
# off silently; this family turns every decision into a deny instead.
package edgeshim

config_types := {
	"allowed_registries": "array",
	"required_annotations": "array",
	"max_memory_bytes": "number",
	"host_network_annotation": "string",
	"max_module_bytes": "number",
	"allowed_mount_prefixes": "array",
	"system_mount_prefixes": "array",
	"data_local_namespaces": "array",
	"egress_annotation": "string",
	"node_data_dir": "string",
}

deny contains msg if {
	some key, want in config_types
	not config_has(key, want)
	msg := concat("", ["config: data.edgeshim_config.", key, " must be set (type ", want, ")"])
}

config_has(key, want) if type_name(data.edgeshim_config[key]) == want

# Lists hold strings only.
deny contains msg if {
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
deny contains msg if {
	some r in allowed_registries
	not endswith(r, "/")
	msg := concat("", ["config: allowed_registries entry ", quote(r), " must end in \"/\""])
}
