"""Demo data for trying the app out: `manage.py load_demo`.

`specs` says what the demo holds (taxonomies, and what each image and scene shows), `drawing` draws
the images with Pillow from those specs (nothing is downloaded, no image files are shipped), and
`loader` stores whatever is missing through the services.
"""
