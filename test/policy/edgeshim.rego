# The policy the private containerd of hack/containerd.sh starts with (the
# integration suite's): everything is allowed except what a test marks, so
# that tests running side by side never deny each other's containers.
package edgeshim

decision := {"allow": count(deny) == 0, "reasons": deny, "network": network} if network

decision := {"allow": count(deny) == 0, "reasons": deny} if not network

# The network tests' containers (ids "net-..."): one node-local address;
# every other container gets policy.toml's network_default (deny).
network := {"connect": ["127.0.0.1:27811"], "listen": ["127.0.0.1:27812"]} if {
	startswith(input.container.id, "net-")
}

# The MQTT tests' publishers (ids "mqtt-..."): the test broker only.
network := {"connect": ["127.0.0.1:47821"]} if {
	startswith(input.container.id, "mqtt-")
}

# The wasi:http test's containers (ids "http-..."): its server's port only
# (a port of its own: the suite's tests run side by side).
network := {"connect": ["127.0.0.1:47815"]} if {
	startswith(input.container.id, "http-")
}

# The name-lookup tests' containers (ids "dns-..."): the test's resolver.
network := {"connect": ["127.0.0.3:53"]} if {
	startswith(input.container.id, "dns-")
}

# CRI containers named "net-echo...": a server on port 7000 of the pod.
network := {"listen": ["*:7000"]} if {
	startswith(input.container.name, "net-echo")
}

deny contains concat("", ["test: container ", input.container.id, " is denied by its id"]) if {
	startswith(input.container.id, "policy-deny-")
}

deny contains concat("", ["test: start of ", input.container.id, " is denied"]) if {
	input.action == "start"
	startswith(input.container.id, "policy-nostart-")
}

deny contains concat("", ["test: CRI container name ", input.container.name, " is denied"]) if {
	startswith(input.container.name, "policy-denied")
}

deny contains concat("", ["test: pod ", input.pod.name, " is denied"]) if {
	startswith(input.pod.name, "policy-denied")
}

# Deny lists a test writes at runtime (hot reload): a folder
# deny_lists/<test>/ holding data.json {"names": [...]} becomes
# data.deny_lists.<test>.names.
deny contains concat("", ["test: ", input.container.name, " is on deny list ", list_name]) if {
	some list_name, list in data.deny_lists
	some name in list.names
	name == input.container.name
}
