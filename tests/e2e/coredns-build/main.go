// Command coredns is CoreDNS with only the plugins a kubeadm-style cluster's Corefile uses (kubeadm's default
// Corefile: errors, health, ready, kubernetes, prometheus, forward, cache, loop, reload, loadbalance; plus log, hosts,
// whoami and debug for tests). Upstream's main imports every plugin, whose cloud SDKs (route53, azure, clouddns)
// make a cold build several times slower; the plugin code itself is upstream's, unchanged. A Corefile naming any
// other plugin fails to load with "unknown directive".
package main

import (
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/debug"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/whoami"

	"github.com/coredns/coredns/coremain"
)

func main() {
	coremain.Run()
}
