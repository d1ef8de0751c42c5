# InferLedger: one image for every role (collector, agent, scheduler, dashboard, sim).
FROM python:3.11-slim
WORKDIR /opt/inferledger
COPY . .
RUN pip install --no-cache-dir . \
 && python -c "from collector.processors.traces import warm_up; warm_up()"
ENTRYPOINT []
CMD ["inferledger", "--help"]
