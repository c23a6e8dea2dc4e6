# CI's stand-in for the Dockerfile at the root (make compose-test): no
# registry reaches the CI machine, so no Go builder or distroless image can
# be pulled. The program is built on the host exactly as the Dockerfile
# builds it (static, -trimpath) and copied FROM scratch; the runtime — user,
# entrypoint, healthcheck — is the Dockerfile's, which deploy/local/stack's
# TestDockerfile keeps so. The context is the directory holding the binary.
FROM scratch
ARG BINARY
COPY ${BINARY} /program
USER 65532:65532
ENTRYPOINT ["/program"]
HEALTHCHECK --interval=5s --timeout=4s --start-period=20s --retries=5 CMD ["/program", "healthcheck"]
