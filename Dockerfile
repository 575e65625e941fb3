# The provisioner image: slim Python with the OCI SDK and helm-rdma. The chart's pre-install hook runs
# `helm-rdma provision --from-values ...` in it; its default tag is the chart's appVersion. No public registry holds
# it: `make provisioner-image` prints the commands that build it and push it to OCIR, and the chart needs
# clusterNetwork.image.repository set to where it was pushed.
#
# The base is pinned by digest: the multi-platform index of the Docker Official Image python:3.12-slim (Python 3.12.13
# on Debian trixie, built 2026-08-05), as docker-library/repo-info records it in repos/python/remote/3.12-slim.md
# (commit 2986dca3a80cb11b70fc4599941096374ea9e509). `docker buildx imagetools inspect python:3.12-slim` shows the
# digest the tag points at today; moving to it is a deliberate change of this line.
FROM python:3.12-slim@sha256:229a2c5bfa27522db7815ea81f9bed70af17ccb9de9fc7ad142b1877b5830d36

# Every dependency from the lock (`make lock`), each file checked against its sha256, wheels only: nothing is built
# and nothing unpinned is fetched.
COPY locks/oci.txt /tmp/oci.txt
RUN pip install --no-cache-dir --disable-pip-version-check --require-hashes --only-binary :all: -r /tmp/oci.txt \
    && rm /tmp/oci.txt

# helm-rdma runs from its source (as the Helm plugin does): no build step, no build backend.
COPY generator/helm_rdma /opt/helm-rdma/generator/helm_rdma
COPY charts /opt/helm-rdma/charts
COPY presets /opt/helm-rdma/presets
COPY schemas /opt/helm-rdma/schemas
ENV PYTHONPATH=/opt/helm-rdma/generator PYTHONDONTWRITEBYTECODE=1

# The hook mounts its values at /etc/helm-rdma and (auth apiKey) the OCI config at /etc/oci.
USER 65532:65532
ENV HOME=/tmp
ENTRYPOINT ["python", "-m", "helm_rdma"]
CMD ["--help"]
