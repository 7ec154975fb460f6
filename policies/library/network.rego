# R4 host-network: no container (any kind) may use the node's network unless
# its annotation host_network_annotation is exactly "allowed".
package edgeshim

deny contains msg if {
	input.container.host_network == true
	not host_network_allowed
	msg := concat("", [
		"host-network: the node's network needs annotation ",
		quote(host_network_annotation), " set to \"allowed\"",
	])
}

host_network_allowed if input.container.annotations[host_network_annotation] == "allowed"
