# One image for every Starling service (tracker, origin, seeding peer); docker-compose.yml picks
# the command. System ffmpeg is preferred over the npm-shipped static build.
FROM node:20-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --no-audit --no-fund
COPY . .
RUN npx vite build --config player/vite.config.ts
ENV NODE_ENV=production
EXPOSE 8000 8080 3478/udp
CMD ["npx", "tsx", "scripts/start.ts"]
