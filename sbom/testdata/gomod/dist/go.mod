module example.com/trap-dist

go 1.22

require github.com/acme/from-dist v0.1.0
