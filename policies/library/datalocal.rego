# R8 data-local: a workload (wasm, native) of a data-local pod must keep its
# data on the node. A pod is data-local when the operator says so: its
# namespace is listed in data_local_namespaces, or the pod itself
# ("namespace/name") in data_local_pods (operators sync both from the
# data-local namespace and pod labels into data). Such a workload may not use
# the node's network (host_network, which the shim reads from the spec's
# namespaces: a fact, not a claim), whatever R4 grants, and its bind mounts
# must come from under node_data_dir or containerd's own
# system_mount_prefixes; on the network it may connect only to the node-local
# brokers in data_local_brokers (rules as docs/policy.md writes them, enforced
# by the shim on every connect), and listen nowhere. Nothing here reads the
# pod's own annotations: a pod can neither declare itself exempt nor leave a
# declaration out to pass.
package edgeshim

data_local if {
	workload
	some ns in data.edgeshim_config.data_local_namespaces
	ns == input.pod.namespace
}

data_local if {
	workload
	some pod in data.edgeshim_config.data_local_pods
	pod == pod_ref
}

deny contains msg if {
	data_local
	input.container.host_network == true
	msg := concat("", [
		"data-local: pod ", quote(pod_ref),
		" keeps its data on the node, so it may not use the node's network",
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
		quote(node_data), " (pod ", quote(pod_ref), ")",
	])
}

network := {"connect": data.edgeshim_config.data_local_brokers, "listen": []} if data_local
