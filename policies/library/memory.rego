# R3 memory: workloads (wasm, native) must set a memory limit, and at most
# max_memory_bytes.
package edgeshim

deny contains msg if {
	workload
	not memory_limit_set
	msg := "memory: memory limit required (resources.limits.memory)"
}

deny contains msg if {
	workload
	limit := input.container.resources.memory_limit
	is_number(limit)
	max := data.edgeshim_config.max_memory_bytes
	limit > max
	msg := concat("", [
		"memory: limit of ", format_int(limit, 10),
		" bytes is over the maximum of ", format_int(max, 10), " bytes",
	])
}

memory_limit_set if {
	limit := input.container.resources.memory_limit
	is_number(limit)
	limit > 0
}
