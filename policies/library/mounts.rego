# R7 mounts: every bind mount (any kind) must come from under one of
# allowed_mount_prefixes, or from containerd's own files under
# system_mount_prefixes.
package edgeshim

deny contains msg if {
	some src in bind_sources
	not under_any(src, data.edgeshim_config.allowed_mount_prefixes)
	not under_any(src, data.edgeshim_config.system_mount_prefixes)
	msg := concat("", ["mounts: bind mount source ", quote(src), " is not under an allowed prefix"])
}
