"""Rolling a pushed image out: a Docker host (docker.py) or Kubernetes manifests (kubernetes.py)."""
