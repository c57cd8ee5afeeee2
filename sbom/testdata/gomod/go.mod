module example.com/fixture

go 1.22

require (
	github.com/spf13/cobra v1.10.2
	go.etcd.io/bbolt v1.5.0
)

require github.com/spf13/pflag v1.0.10 // indirect
