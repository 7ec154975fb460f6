# R5 wasm-only: native workloads are refused (wasm and the pod's sandbox are
# fine).
# R6 module-size: a Wasm module may be at most max_module_bytes.
package edgeshim

deny contains msg if {
	input.container.kind == "native"
	msg := concat("", [
		"wasm-only: native containers are not allowed (entrypoint ",
		quote(input.container.entrypoint), ")",
	])
}

deny contains msg if {
	input.container.kind == "wasm"
	size := input.container.module.size
	is_number(size)
	max := data.edgeshim_config.max_module_bytes
	size > max
	msg := concat("", [
		"module-size: module of ", format_int(size, 10),
		" bytes is over the maximum of ", format_int(max, 10), " bytes",
	])
}
