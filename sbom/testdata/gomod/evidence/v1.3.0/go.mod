module example.com/trap-evidence

go 1.22

require github.com/acme/from-evidence v0.1.0
