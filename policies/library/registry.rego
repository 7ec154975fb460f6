# R1 registry: the image must come from an allowed registry. Applies to every
# kind, the pod's pause (sandbox) image included when containerd names it
# (1.7 and later). An empty image (containerd did not name one, as with ctr)
# cannot be checked and is denied, except a pod's own sandbox: containerd
# 1.6 does not name the pause image, and a pod cannot choose it (it is
# containerd's sandbox_image, set by the operator); kind "sandbox" is a fact
# the shim establishes, never a request's claim.
package edgeshim

deny contains msg if {
	input.container.image == ""
	input.container.kind != "sandbox"
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
