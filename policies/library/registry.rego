# R1 registry: the image must come from an allowed registry. Applies to every
# kind, the pod's pause (sandbox) image included. An empty image (containerd
# did not name one, as with ctr) cannot be checked and is denied.
package edgeshim

deny contains msg if {
	input.container.image == ""
	msg := "registry: image unknown (containerd did not name the image), so its registry cannot be checked"
}

deny contains msg if {
	image := input.container.image
	image != ""
	not image_allowed
	msg := concat("", ["registry: image ", quote(image), " is not from an allowed registry"])
}

image_allowed if {
	some registry in data.edgeshim_config.allowed_registries
	startswith(input.container.image, registry)
}
