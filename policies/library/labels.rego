# R2 labels: workloads (wasm, native; not the sandbox) must carry every
# annotation listed in required_annotations. The value may be anything,
# including empty.
package edgeshim

deny contains msg if {
	workload
	annotations := object.get(input.container, "annotations", {})
	some key in data.edgeshim_config.required_annotations
	not key in object.keys(annotations)
	msg := concat("", ["labels: required annotation ", quote(key), " is missing"])
}
