# The provisioner image: slim Python with helm-rdma and the OCI SDK. The chart's pre-install hook runs
# `helm-rdma provision --from-values ...` in it; its default tag is the chart's appVersion. No public registry holds
# it: `make provisioner-image` prints the commands that build it and push it to OCIR, and the chart needs
# clusterNetwork.image.repository set to where it was pushed.
FROM python:3.12-slim

COPY . /src
RUN pip install --no-cache-dir "/src[oci]" && rm -rf /src

# The hook mounts its values at /etc/helm-rdma and (auth apiKey) the OCI config at /etc/oci.
USER 65532:65532
ENV HOME=/tmp
ENTRYPOINT ["helm-rdma"]
CMD ["--help"]
