# R4 host-network: no container (any kind, the pod's sandbox included) may use
# the node's network unless the operator grants it: its pod's namespace is
# listed in host_network_namespaces, or the pod itself ("namespace/name") in
# host_network_pods. Operators sync both lists from namespace and pod labels
# into data. The requesting object's own annotations grant nothing: a pod
# author can set those (CRI copies listed pod annotations into the spec).
# Outside a pod (ctr, no CRI) nothing can be granted.
package edgeshim

deny contains msg if {
	input.container.host_network == true
	input.pod == null
	msg := "host-network: the node's network is granted only to pods the operator lists (host_network_namespaces, host_network_pods), and this container is in no pod"
}

deny contains msg if {
	input.container.host_network == true
	input.pod != null
	not host_network_granted
	msg := concat("", [
		"host-network: pod ", quote(pod_ref),
		" is not granted the node's network (host_network_namespaces, host_network_pods)",
	])
}

host_network_granted if {
	some ns in data.edgeshim_config.host_network_namespaces
	ns == input.pod.namespace
}

host_network_granted if {
	some pod in data.edgeshim_config.host_network_pods
	pod == pod_ref
}
