"""tedigan.editing"""
