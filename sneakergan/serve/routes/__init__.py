"""The site's routes as FastAPI routers: pages, images, the JSON API, projection and the offline API docs."""
