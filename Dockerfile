# InferLedger: one image for every role (collector, agent, scheduler, dashboard, sim).
FROM python:3.11-slim
WORKDIR /opt/inferledger
COPY . .
RUN pip install --no-cache-dir .
ENTRYPOINT []
CMD ["inferledger", "--help"]
