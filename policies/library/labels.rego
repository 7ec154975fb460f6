# R2 labels: workloads (wasm, native; not the sandbox) must carry every
# annotation listed in required_annotations. The value may be anything,
# including empty.
package edgeshim

deny contains msg if {
	workload
	some key in required_annotations
	not annotated(key)
	msg := concat("", ["labels: required annotation ", quote(key), " is missing"])
}

annotated(key) if _ = input.container.annotations[key]
