"""stsvend's server: everything the Lambda function runs besides the routes in app.py."""
