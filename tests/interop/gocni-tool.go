// gocni-tool drives CNI plugins through containerd's go-cni (Debian's
// golang-github-containerd-go-cni-dev, over Debian's libcni), the way containerd's CRI plugin
// does: networks from a configuration directory (WithAllConf, interface names eth0, eth1, ...),
// optionally the loopback network (WithLoNetwork), labels as CNI_ARGS and port mappings as the
// portMappings capability. It is the interop peer of the cni-rs pod API tests.
//
//	gocni-tool setup|setup-serial|check|remove -confdir DIR -plugin-dirs D1:D2 -id ID -netns PATH \
//	    [-lo] [-portmap '[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]'] [-label K=V]...
//
// setup prints {"interfaces": {NAME: {"ips": [{"ip","gateway"}], "mac", "sandbox"}}, "raw": [...]};
// the other verbs print {}. Failures print {"error": "..."} and exit 1. The result cache is
// libcni's default (/var/lib/cni): go-cni has no option for it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	gocni "github.com/containerd/go-cni"
)

type labels map[string]string

func (l labels) String() string { return fmt.Sprint(map[string]string(l)) }

func (l labels) Set(v string) error {
	kv := strings.SplitN(v, "=", 2)
	if len(kv) != 2 || kv[0] == "" {
		return fmt.Errorf("bad label %q (want K=V)", v)
	}
	l[kv[0]] = kv[1]
	return nil
}

type ipOut struct {
	IP      string `json:"ip"`
	Gateway string `json:"gateway,omitempty"`
}

type ifOut struct {
	IPs     []ipOut `json:"ips"`
	Mac     string  `json:"mac,omitempty"`
	Sandbox string  `json:"sandbox,omitempty"`
}

func emit(v interface{}) {
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(v); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}

func fail(err error) {
	emit(map[string]string{"error": err.Error()})
	os.Exit(1)
}

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: gocni-tool setup|setup-serial|check|remove [flags]"))
	}
	verb := os.Args[1]
	fs := flag.NewFlagSet(verb, flag.ContinueOnError)
	confDir := fs.String("confdir", "", "network configuration directory")
	pluginDirs := fs.String("plugin-dirs", "/opt/cni/bin", "plugin directories, colon separated")
	id := fs.String("id", "", "container ID")
	netns := fs.String("netns", "", "network namespace path")
	lo := fs.Bool("lo", false, "attach the loopback network too")
	portmap := fs.String("portmap", "", "port mappings, a JSON array")
	lbl := labels{}
	fs.Var(lbl, "label", "K=V passed in CNI_ARGS (repeatable)")
	if err := fs.Parse(os.Args[2:]); err != nil {
		fail(err)
	}

	// The plugin directory first: it replaces the libcni handle the other options capture.
	opts := []gocni.Opt{gocni.WithPluginDir(strings.Split(*pluginDirs, ":")), gocni.WithPluginConfDir(*confDir)}
	if *lo {
		opts = append(opts, gocni.WithLoNetwork)
	}
	opts = append(opts, gocni.WithAllConf)
	c, err := gocni.New(opts...)
	if err != nil {
		fail(err)
	}
	nsOpts := []gocni.NamespaceOpts{gocni.WithLabels(lbl)}
	if *portmap != "" {
		var pm []gocni.PortMapping
		if err := json.Unmarshal([]byte(*portmap), &pm); err != nil {
			fail(fmt.Errorf("bad -portmap: %v", err))
		}
		nsOpts = append(nsOpts, gocni.WithCapabilityPortMap(pm))
	}

	ctx := context.Background()
	switch verb {
	case "setup", "setup-serial":
		var r *gocni.Result
		if verb == "setup" {
			r, err = c.Setup(ctx, *id, *netns, nsOpts...)
		} else {
			r, err = c.SetupSerially(ctx, *id, *netns, nsOpts...)
		}
		if err != nil {
			fail(err)
		}
		ifs := map[string]ifOut{}
		for name, cfg := range r.Interfaces {
			o := ifOut{IPs: []ipOut{}, Mac: cfg.Mac, Sandbox: cfg.Sandbox}
			for _, ip := range cfg.IPConfigs {
				x := ipOut{IP: ip.IP.String()}
				if ip.Gateway != nil {
					x.Gateway = ip.Gateway.String()
				}
				o.IPs = append(o.IPs, x)
			}
			ifs[name] = o
		}
		emit(map[string]interface{}{"interfaces": ifs, "raw": r.Raw()})
	case "check":
		if err := c.Check(ctx, *id, *netns, nsOpts...); err != nil {
			fail(err)
		}
		emit(map[string]string{})
	case "remove":
		if err := c.Remove(ctx, *id, *netns, nsOpts...); err != nil {
			fail(err)
		}
		emit(map[string]string{})
	default:
		fail(fmt.Errorf("unknown verb %q", verb))
	}
}
