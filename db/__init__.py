"""Database: Tortoise models, versioned migrations, start-up and shutdown."""
