// Command etcd is etcd 3.6 for the test control plane (Debian's etcd 3.4
// breaks client-go's watch-list informers).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
