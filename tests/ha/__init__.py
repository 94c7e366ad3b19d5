"""Several syncd hosts, one writer: leader election on a real etcd cluster."""
