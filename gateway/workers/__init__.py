"""Several gateway processes behind one port: a pre-fork supervisor and what each worker adds."""
