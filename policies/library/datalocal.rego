# R8 data-local: a workload (wasm, native) in a pod whose namespace is listed
# in data_local_namespaces (operators sync the namespaces labelled data-local
# into data) must keep its data on the node: it may not ask for egress
# (egress_annotation "true"), and its bind mounts must come from under
# node_data_dir or containerd's own system_mount_prefixes.
package edgeshim

data_local if {
	workload
	input.pod != null
	some ns in data.edgeshim_config.data_local_namespaces
	ns == input.pod.namespace
}

deny contains msg if {
	data_local
	annotation := data.edgeshim_config.egress_annotation
	input.container.annotations[annotation] == "true"
	msg := concat("", [
		"data-local: namespace ", quote(input.pod.namespace),
		" is data-local, so annotation ", quote(annotation), " may not be \"true\"",
	])
}

deny contains msg if {
	data_local
	some src in bind_sources
	node_data := data.edgeshim_config.node_data_dir
	not under_any(src, [node_data])
	not under_any(src, data.edgeshim_config.system_mount_prefixes)
	msg := concat("", [
		"data-local: bind mount source ", quote(src), " is outside the node data directory ",
		quote(node_data), " (namespace ", quote(input.pod.namespace), ")",
	])
}
