# R4 host-network: no container (any kind) may use the node's network unless
# its annotation host_network_annotation is exactly "allowed".
package edgeshim

deny contains msg if {
	input.container.host_network == true
	annotation := data.edgeshim_config.host_network_annotation
	not input.container.annotations[annotation] == "allowed"
	msg := concat("", [
		"host-network: the node's network needs annotation ",
		quote(annotation), " set to \"allowed\"",
	])
}
